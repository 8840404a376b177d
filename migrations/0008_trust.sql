-- Trust (issue 10): immutability that holds against TRUNCATE and for everything a published
-- figure is read through; an append-only publication log instead of a movable pointer; keys
-- with roles and scopes; an audit log; run attempts (running, complete, failed); results seals.
--
-- The API connects as the role placespend_api (store/sql/api_role.sql, applied after every
-- migration), which may read everything and INSERT what its endpoints write, never UPDATE,
-- DELETE or TRUNCATE a published figure. The triggers below refuse those to every role, the
-- owner included (only an owner who first disables the triggers could get past them).

-- ---------------------------------------------------------------- the publication log
-- Publishing appends an event; the current run of a collection is its latest event. Nothing
-- that says what was public, and when, is ever overwritten.
CREATE TABLE publication_event (
    seq           bigserial PRIMARY KEY,
    collection_id text NOT NULL,
    run_id        integer NOT NULL,
    published_at  timestamptz NOT NULL DEFAULT now(),
    published_by  text NOT NULL DEFAULT 'cli',
    FOREIGN KEY (collection_id, run_id) REFERENCES collection
);
CREATE INDEX publication_event_latest ON publication_event (collection_id, seq DESC);
INSERT INTO publication_event (collection_id, run_id, published_at, published_by)
SELECT id, run_id, updated_at, 'migrated' FROM collection_current ORDER BY updated_at, id;
DROP TABLE collection_current;
-- Each published id's latest event, by the index (one lookup per id, however many events):
-- a DISTINCT ON over the whole log grew with every publish (bench/load.py found it).
CREATE VIEW collection_current AS
SELECT k.id, e.run_id, e.published_at AS updated_at
FROM (SELECT DISTINCT id FROM collection) k
CROSS JOIN LATERAL (
    SELECT p.run_id, p.published_at FROM publication_event p
    WHERE p.collection_id = k.id ORDER BY p.seq DESC LIMIT 1) e;

-- ---------------------------------------------------------------- keys: roles and scopes
-- viewer: no writes; editor: loads, runs, publishing and saving neighbourhoods, limited to the
-- bodies and places (boundary or neighbourhood set slugs) it is scoped to (NULL: all);
-- admin: everything, and the keys and the audit log.
ALTER TABLE api_key ALTER COLUMN role DROP DEFAULT;
UPDATE api_key SET role = 'editor' WHERE role = 'loader';
ALTER TABLE api_key
    ADD CONSTRAINT api_key_role_check CHECK (role IN ('viewer', 'editor', 'admin')),
    ADD COLUMN bodies text[],
    ADD COLUMN places text[],
    ADD COLUMN created_by text NOT NULL DEFAULT 'cli';

-- ---------------------------------------------------------------- the audit log
-- Every write attempted over HTTP or by the CLI: who, what, when, the batch hash, the outcome.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor       text,                  -- the key's name, 'cli:USER', or NULL (no or bad key)
    key_prefix  text,                  -- the first characters of the key presented, if any
    role        text,
    action      text NOT NULL,         -- e.g. upload:spend, run, publish, key:create
    target      text,                  -- what it names: a path, a run, a set, a key
    batch_sha256 text,                 -- the content hash of an upload
    outcome     text NOT NULL CHECK (outcome IN ('ok', 'unchanged', 'denied', 'refused',
                                                  'failed')),
    status      integer,               -- the HTTP status (NULL for the CLI)
    detail      text,                  -- the cause of a refusal or failure
    client      text                   -- the client address, or the CLI's host
);
CREATE INDEX audit_log_at ON audit_log (at DESC);

-- ---------------------------------------------------------------- run attempts
-- One row per `placespend run` or POST /runs: running while it works, then complete (naming
-- its run) or failed (with the reason). A process that died leaves its attempt 'running' only
-- until the next look (store.runs.reap_attempts): its session lock is gone, so it is failed.
CREATE TABLE run_attempt (
    id          serial PRIMARY KEY,
    request     jsonb NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_by  text NOT NULL,
    status      text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'complete',
                                                                  'failed')),
    finished_at timestamptz,
    run_id      integer REFERENCES run,
    reason      text
);
CREATE INDEX run_attempt_running ON run_attempt (id) WHERE status = 'running';

-- ---------------------------------------------------------------- results seals
-- The SHA-256 of what a run and each publication hold (store.runs.results_hash), written in
-- the same transaction; `placespend verify` recomputes and compares. Run ids are not hashed,
-- so a retry of the same inputs seals the same hash.
CREATE TABLE run_seal (
    run_id         integer PRIMARY KEY REFERENCES run,
    results_sha256 text NOT NULL CHECK (results_sha256 ~ '^[0-9a-f]{64}$'),
    sealed_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE collection_seal (
    collection_id  text NOT NULL,
    run_id         integer NOT NULL,
    results_sha256 text NOT NULL CHECK (results_sha256 ~ '^[0-9a-f]{64}$'),
    sealed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collection_id, run_id),
    FOREIGN KEY (collection_id, run_id) REFERENCES collection
);

-- ---------------------------------------------------------------- refusals
CREATE FUNCTION refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'published results are immutable (TRUNCATE on %)', TG_TABLE_NAME
        USING ERRCODE = 'P0001', HINT = 'nothing a published figure is read through is removed';
END $$;

-- A body's name and kind never change; a whole area or code not known yet may be filled in.
CREATE FUNCTION body_fill_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.id <> OLD.id OR NEW.slug <> OLD.slug OR NEW.name <> OLD.name
       OR NEW.kind <> OLD.kind
       OR (OLD.ons_code IS NOT NULL AND NEW.ons_code IS DISTINCT FROM OLD.ons_code)
       OR (OLD.area_set_id IS NOT NULL AND NEW.area_set_id IS DISTINCT FROM OLD.area_set_id)
       OR (OLD.area_code IS NOT NULL AND NEW.area_code IS DISTINCT FROM OLD.area_code)
       OR (OLD.source_code IS NOT NULL AND NEW.source_code IS DISTINCT FROM OLD.source_code)
    THEN
        RAISE EXCEPTION 'published results are immutable (% on body %)', TG_OP, OLD.slug
            USING ERRCODE = 'P0001', HINT = 'a body keeps its identity; load a new body instead';
    END IF;
    RETURN NEW;
END $$;

-- A key is revoked once, never changed otherwise, never deleted.
CREATE FUNCTION key_revoke_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL
       OR (to_jsonb(NEW) - 'revoked_at') <> (to_jsonb(OLD) - 'revoked_at') THEN
        RAISE EXCEPTION 'API keys are revoked, never changed or deleted (% on api_key)', TG_OP
            USING ERRCODE = 'P0001', HINT = 'revoke the key and create another';
    END IF;
    RETURN NEW;
END $$;

-- Crosswalks of a set nobody has published may be dropped (a neighbourhood set still being
-- drawn); once a publication reads through a set, its crosswalks never change.
CREATE FUNCTION crosswalk_unpublished_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    target integer;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'published results are immutable (UPDATE on %)', TG_TABLE_NAME
            USING ERRCODE = 'P0001', HINT = 'crosswalks are built once';
    END IF;
    IF TG_TABLE_NAME = 'crosswalk' THEN
        target := OLD.target_set_id;
    ELSE
        SELECT x.target_set_id INTO target FROM crosswalk x WHERE x.id = OLD.crosswalk_id;
    END IF;
    IF EXISTS (SELECT 1 FROM collection c WHERE c.target_set_id = target) THEN
        RAISE EXCEPTION 'published results are immutable (DELETE on % of a published set)',
            TG_TABLE_NAME USING ERRCODE = 'P0001', HINT = 'publish into a new set instead';
    END IF;
    RETURN OLD;
END $$;

-- The run attempts are a record: their status moves forward, rows are never removed.
CREATE FUNCTION attempt_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.status <> 'running' THEN
        RAISE EXCEPTION 'run attempts are a record (% on a finished attempt)', TG_OP
            USING ERRCODE = 'P0001', HINT = 'start a new run';
    END IF;
    RETURN NEW;
END $$;

DO $$
DECLARE
    t text;
BEGIN
    -- Append-only: rows that had no row trigger yet.
    FOREACH t IN ARRAY ARRAY['boundary_set', 'proxy', 'site_set', 'atom_set', 'atom',
                             'cofog_function', 'postcode', 'publication_event', 'audit_log',
                             'run_seal', 'collection_seal']
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I '
                       'FOR EACH ROW EXECUTE FUNCTION refuse_change()', t || '_immutable', t);
    END LOOP;
    -- No TRUNCATE of anything users loaded, runs produced or the record keeps.
    FOREACH t IN ARRAY ARRAY['upload_batch', 'spend_line', 'spend_scope', 'boundary_set',
                             'boundary', 'proxy', 'proxy_value', 'site_set', 'site', 'postcode',
                             'body', 'cofog_function', 'function_map', 'transfer', 'atom_set',
                             'atom', 'crosswalk', 'crosswalk_weight', 'run', 'run_line',
                             'run_slice', 'atom_allocation', 'target_allocation', 'run_flow',
                             'collection', 'collection_feature', 'publication_event',
                             'run_seal', 'collection_seal', 'api_key', 'audit_log',
                             'run_attempt']
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate()',
                       t || '_no_truncate', t);
    END LOOP;
END $$;

CREATE TRIGGER body_kept BEFORE UPDATE OR DELETE ON body
    FOR EACH ROW EXECUTE FUNCTION body_fill_only();
CREATE TRIGGER api_key_kept BEFORE UPDATE OR DELETE ON api_key
    FOR EACH ROW EXECUTE FUNCTION key_revoke_only();
CREATE TRIGGER crosswalk_kept BEFORE UPDATE OR DELETE ON crosswalk
    FOR EACH ROW EXECUTE FUNCTION crosswalk_unpublished_only();
CREATE TRIGGER crosswalk_weight_kept BEFORE UPDATE OR DELETE ON crosswalk_weight
    FOR EACH ROW EXECUTE FUNCTION crosswalk_unpublished_only();
CREATE TRIGGER run_attempt_kept BEFORE UPDATE OR DELETE ON run_attempt
    FOR EACH ROW EXECUTE FUNCTION attempt_forward_only();
-- spend_line refused UPDATE (0001) and DELETE (0004) already.
