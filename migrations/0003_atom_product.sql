-- Runs and publications apart (algorithm version 2).
--
-- A run is computed once from its inputs and stores its *atom product*: pence per (atom, slice),
-- a slice being one (body, COFOG function, method). It no longer stores every (line, atom)
-- pair: one line's spread is derived on request from the run's lines and the stored atoms and
-- crosswalks. Each line's outcome (allocated pence, method, reason) is a row of run_line.
-- A publication (a collection row) is a run seen through one target set; a run can be
-- published to any loaded boundary set at any time without re-running, and a what-if run
-- changes no public collection until it is published (collection_current moves).
--
-- Runs made by algorithm version 1 stored (line, atom) rows and tied runs to target sets;
-- their shape cannot be carried over, so they are dropped here: run `placespend run` again.

DROP TABLE IF EXISTS collection_current, collection_feature, collection, target_allocation,
    allocation, run CASCADE;

CREATE TABLE run (
    id                serial PRIMARY KEY,
    financial_year    text NOT NULL CHECK (financial_year ~ '^\d{4}-\d{2}$'),
    atom_set_id       integer NOT NULL REFERENCES atom_set,
    inputs_sha256     text NOT NULL,      -- lines, proxies, proxy table, atoms, algorithm version
    params            jsonb NOT NULL,     -- proxy table, bodies, zone and cut sets
    algorithm_version text NOT NULL,
    code_version      text NOT NULL,
    conservation      jsonb NOT NULL,     -- totals; the per-line table is run_line
    status            text NOT NULL DEFAULT 'complete' CHECK (status IN ('complete')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (inputs_sha256)
);

-- The conservation report, one row per source line of the run.
CREATE TABLE run_line (
    run_id          integer NOT NULL REFERENCES run,
    line_id         bigint NOT NULL REFERENCES spend_line,
    proxy           text NOT NULL,        -- the proxy the proxy table chose for the line
    method          text CHECK (method IN ('direct', 'agency_estimate', 'proxy', 'area',
                                           'best_fit')),
    allocated_pence bigint NOT NULL,
    reason          text,                 -- why anything was not allocated, or a note
    PRIMARY KEY (run_id, line_id)
);

-- The (body, function, method) combinations a run's product is broken down by.
CREATE TABLE run_slice (
    run_id     integer NOT NULL REFERENCES run,
    slice_id   integer NOT NULL,
    body_id    integer NOT NULL REFERENCES body,
    cofog_code text NOT NULL REFERENCES cofog_function,
    method     text NOT NULL CHECK (method IN ('direct', 'agency_estimate', 'proxy', 'area',
                                               'best_fit')),
    PRIMARY KEY (run_id, slice_id)
);

-- The stored product: pence per (atom, slice). Written with binary COPY; read by atom.
CREATE TABLE atom_allocation (
    run_id       integer NOT NULL,
    atom_id      integer NOT NULL,
    slice_id     integer NOT NULL,
    amount_pence bigint NOT NULL CHECK (amount_pence <> 0),
    PRIMARY KEY (run_id, atom_id, slice_id),
    FOREIGN KEY (run_id, slice_id) REFERENCES run_slice
);

-- A drawn polygon reads the atoms of the wards it touches.
CREATE INDEX atom_cut_idx ON atom (atom_set_id, cut_code);

-- Publications: one run seen through one target set, served as an OGC API collection.
CREATE TABLE collection (
    id              text NOT NULL CHECK (id ~ '^[a-z0-9][a-z0-9_-]*$'),   -- no dots: QGIS
    run_id          integer NOT NULL REFERENCES run,
    target_set_id   integer NOT NULL REFERENCES boundary_set,
    title           text NOT NULL,
    description     text NOT NULL,
    properties      jsonb NOT NULL,       -- ordered property names and types, for the schema
    allocated_pence bigint NOT NULL,      -- of the run's pence, inside the set's units
    outside_pence   bigint NOT NULL,      -- and outside them
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, run_id)
);

CREATE TABLE target_allocation (
    run_id        integer NOT NULL,
    target_set_id integer NOT NULL REFERENCES boundary_set,
    target_code   text NOT NULL,
    slice_id      integer NOT NULL,
    amount_pence  bigint NOT NULL,
    PRIMARY KEY (run_id, target_set_id, target_code, slice_id),
    FOREIGN KEY (run_id, slice_id) REFERENCES run_slice
);

CREATE TABLE collection_feature (
    collection_id text NOT NULL,
    run_id        integer NOT NULL,
    code          text NOT NULL,
    properties    json NOT NULL,          -- json, not jsonb: keeps the property order
    PRIMARY KEY (collection_id, run_id, code),
    FOREIGN KEY (collection_id, run_id) REFERENCES collection
);

-- Which run each collection id serves to the public. Runs and publications stay immutable;
-- this pointer only moves when someone publishes (`placespend publish`).
CREATE TABLE collection_current (
    id         text PRIMARY KEY,
    run_id     integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (id, run_id) REFERENCES collection
);

CREATE TRIGGER run_immutable BEFORE UPDATE OR DELETE ON run
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER run_line_immutable BEFORE UPDATE OR DELETE ON run_line
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER run_slice_immutable BEFORE UPDATE OR DELETE ON run_slice
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER atom_allocation_immutable BEFORE UPDATE OR DELETE ON atom_allocation
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER target_allocation_immutable BEFORE UPDATE OR DELETE ON target_allocation
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER collection_immutable BEFORE UPDATE OR DELETE ON collection
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER collection_feature_immutable BEFORE UPDATE OR DELETE ON collection_feature
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
