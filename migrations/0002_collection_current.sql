-- Which run each collection id serves. Runs stay immutable; this is only a pointer, moved when
-- a run is published, or when an earlier run is asked for again with the same inputs (so
-- re-running the defaults after a custom run brings the default figures back).
CREATE TABLE collection_current (
    id         text PRIMARY KEY,
    run_id     integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (id, run_id) REFERENCES collection
);

INSERT INTO collection_current (id, run_id)
SELECT id, max(run_id) FROM collection GROUP BY id;
