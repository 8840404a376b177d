-- The registry of everything users load (issue 6): boundary sets, proxies, site sets, postcodes,
-- bodies, function mappings, spend and transfers, each from an upload batch with a content hash.
--
-- - Boundary sets and proxies are *versioned*: loading changed content under a slug adds a new
--   version; runs made on the old version keep pointing at its rows (by id), untouched.
-- - Spend batches are scoped by (body, financial year): a corrected file for the same body and
--   year supersedes the earlier batch for the next run; the earlier one stays on record, and so
--   do the runs made on it (their lines are referenced by id and never change).
-- - Rows users loaded are never updated or deleted (triggers below).

-- Upload batches: one per loaded file, whatever its kind. ``sha256`` is of the content and the
-- options that change its meaning, so the same file twice is found and nothing new is made.
ALTER TABLE upload_batch
    ADD COLUMN options    jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN report     jsonb NOT NULL DEFAULT '{}',   -- what was stored, repairs, guesses
    ADD COLUMN loaded_by  text;                           -- API key name, or 'cli'
ALTER TABLE upload_batch DROP CONSTRAINT IF EXISTS upload_batch_kind_check;
ALTER TABLE upload_batch ADD CONSTRAINT upload_batch_kind_check CHECK (kind IN (
    'boundaries', 'proxy', 'sites', 'postcodes', 'spend', 'transfers', 'functions'));
COMMENT ON TABLE upload_batch IS 'One row per loaded file; never updated or deleted.';

-- Boundary sets: versions under one slug; kinds of any geography.
ALTER TABLE boundary_set DROP CONSTRAINT boundary_set_slug_key;
ALTER TABLE boundary_set DROP CONSTRAINT boundary_set_kind_check;
ALTER TABLE boundary_set
    ADD COLUMN version    integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    ADD COLUMN batch_id   integer REFERENCES upload_batch,
    ADD COLUMN tiles      boolean,                 -- no overlaps above 1 m² (NULL: not checked)
    ADD COLUMN overlap_m2 double precision,
    ADD COLUMN gap_m2     double precision,
    ADD COLUMN repairs    jsonb NOT NULL DEFAULT '[]',   -- features made valid, with the area changed
    ADD CONSTRAINT boundary_set_kind_check CHECK (kind IN (
        'ward', 'lsoa', 'oa', 'msoa', 'small_area', 'borough', 'region', 'constituency',
        'agency_area', 'neighbourhood', 'other')),
    ADD CONSTRAINT boundary_set_slug_version_key UNIQUE (slug, version);

-- Atom sets are named by the versions they cut, not by slugs.
ALTER TABLE atom_set DROP CONSTRAINT atom_set_slug_key;
ALTER TABLE atom_set ADD CONSTRAINT atom_set_pair_key UNIQUE (zone_set_id, cut_set_id);

-- Proxies: versions under one slug, tied to a unit set and a year.
ALTER TABLE proxy DROP CONSTRAINT proxy_slug_key;
ALTER TABLE proxy
    ADD COLUMN version  integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    ADD COLUMN batch_id integer REFERENCES upload_batch,
    ADD COLUMN measure  text NOT NULL DEFAULT 'residents',  -- residents, households, pupils...
    ADD CONSTRAINT proxy_slug_version_key UNIQUE (slug, version);

-- Bodies: the area a body covers (its "whole area", for lines reported for all of it).
ALTER TABLE body
    ADD COLUMN area_set_id integer REFERENCES boundary_set,
    ADD COLUMN area_code   text,
    ADD COLUMN source_code text;                    -- e.g. the DCLG E-code of a council

-- Function codes of other schemes (Revenue Outturn lines, CIPFA...) mapped to COFOG. Users add
-- mappings by loading a file; a code keeps the COFOG code it was first mapped to.
CREATE TABLE function_map (
    scheme      text NOT NULL CHECK (scheme ~ '^[a-z0-9][a-z0-9_-]*$'),
    source_code text NOT NULL,
    cofog_code  text NOT NULL REFERENCES cofog_function,
    rationale   text NOT NULL,
    batch_id    integer REFERENCES upload_batch,
    PRIMARY KEY (scheme, source_code)
);

-- Site sets (schools, GP practices, stations...) and their points.
CREATE TABLE site_set (
    id          serial PRIMARY KEY,
    slug        text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]*$'),
    version     integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    name        text NOT NULL,
    kind        text NOT NULL,
    source      text NOT NULL,
    licence     text NOT NULL,
    attribution text NOT NULL,
    batch_id    integer NOT NULL REFERENCES upload_batch,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (slug, version)
);

CREATE TABLE site (
    id        bigserial PRIMARY KEY,
    set_id    integer NOT NULL REFERENCES site_set,
    site_code text NOT NULL,
    name      text NOT NULL,
    kind      text NOT NULL,
    postcode  text,
    located   text NOT NULL CHECK (located IN ('coordinates', 'postcode')),
    attrs     jsonb NOT NULL DEFAULT '{}',        -- the file's other fields (pupils, patients...)
    geom      geometry(Point, 27700) NOT NULL,
    UNIQUE (set_id, site_code)
);
CREATE INDEX site_geom_idx ON site USING gist (geom);

-- Postcode points (e.g. Code-Point Open); the latest batch holding a postcode answers for it.
CREATE TABLE postcode (
    batch_id integer NOT NULL REFERENCES upload_batch,
    postcode text NOT NULL CHECK (postcode ~ '^[A-Z0-9]+ [0-9][A-Z]{2}$'),
    geom     geometry(Point, 27700) NOT NULL,
    PRIMARY KEY (postcode, batch_id)
);

-- Spend lines: income apart from expenditure; located by area, the body's whole area, a point
-- (coordinates, a postcode or a site); unique within their batch, not across batches (a
-- corrected file repeats the lines it corrects).
ALTER TABLE spend_line DROP CONSTRAINT spend_line_body_id_financial_year_line_area_set_id_area_cod_key;
ALTER TABLE spend_line
    ALTER COLUMN area_set_id DROP NOT NULL,
    ALTER COLUMN area_code DROP NOT NULL,
    ADD COLUMN kind        text NOT NULL DEFAULT 'expenditure'
                           CHECK (kind IN ('expenditure', 'income')),
    ADD COLUMN scheme      text NOT NULL DEFAULT 'cofog',  -- how the function was given
    ADD COLUMN source_code text,                            -- the function as given
    ADD COLUMN located_by  text NOT NULL DEFAULT 'area'
                           CHECK (located_by IN ('area', 'body_area', 'point', 'postcode', 'site')),
    ADD COLUMN postcode    text,
    ADD COLUMN site_id     bigint REFERENCES site,
    ADD COLUMN geom        geometry(Point, 27700),
    ADD COLUMN shares      jsonb,                           -- agency-supplied shares, if any
    ADD CONSTRAINT spend_line_batch_row_key UNIQUE (batch_id, source_row),
    ADD CONSTRAINT spend_line_located CHECK (
        (located_by IN ('area', 'body_area') AND area_set_id IS NOT NULL
            AND area_code IS NOT NULL)
        OR (located_by IN ('point', 'postcode', 'site') AND geom IS NOT NULL));
CREATE INDEX spend_line_year_idx ON spend_line (financial_year, body_id);

-- Which (body, year, dataset) a spend batch covers. The newest batch for each is the one runs
-- use; older ones are superseded (kept, and still read by the runs made on them). A body's
-- datasets are its separate returns for a year (its Revenue Outturn, its payments to GP
-- practices...): a file of one never supersedes another.
CREATE TABLE spend_scope (
    batch_id       integer NOT NULL REFERENCES upload_batch,
    body_id        integer NOT NULL REFERENCES body,
    financial_year text NOT NULL CHECK (financial_year ~ '^\d{4}-\d{2}$'),
    dataset        text NOT NULL DEFAULT 'main' CHECK (dataset ~ '^[a-z0-9][a-z0-9_-]*$'),
    lines          integer NOT NULL,
    total_pence    bigint NOT NULL,        -- signed sum of the expenditure lines
    income_pence   bigint NOT NULL,        -- sum of the income lines, kept apart
    content_sha256 text,                   -- of the pair's lines: an unchanged pair is not reloaded
    supersedes     integer REFERENCES upload_batch,
    PRIMARY KEY (batch_id, body_id, financial_year, dataset)
);
INSERT INTO spend_scope (batch_id, body_id, financial_year, lines, total_pence, income_pence)
SELECT batch_id, body_id, financial_year, count(*), sum(amount_pence), 0
FROM spend_line GROUP BY batch_id, body_id, financial_year;

CREATE VIEW spend_current AS
SELECT DISTINCT ON (body_id, financial_year, dataset) body_id, financial_year, dataset, batch_id
FROM spend_scope ORDER BY body_id, financial_year, dataset, batch_id DESC;

-- Transfers between bodies (grants passed on). Counted once, at the body that finally spends:
-- a run takes the payer's passed-on part off the payer's lines; the flow stays on record.
DROP TABLE transfer;
CREATE TABLE transfer (
    id             bigserial PRIMARY KEY,
    batch_id       integer NOT NULL REFERENCES upload_batch,
    payer_body_id  integer NOT NULL REFERENCES body,
    payee_body_id  integer NOT NULL REFERENCES body CHECK (payee_body_id <> payer_body_id),
    financial_year text NOT NULL CHECK (financial_year ~ '^\d{4}-\d{2}$'),
    cofog_code     text REFERENCES cofog_function,
    amount_pence   bigint NOT NULL CHECK (amount_pence > 0),
    recorded_by    text NOT NULL CHECK (recorded_by IN ('payer', 'payee', 'other')),
    reference      text,                   -- the grant's own name or number, if given
    source_row     integer NOT NULL,
    UNIQUE (batch_id, source_row)
);

-- What each run took off payers' lines (counted once, at the payee) and the flows it counted.
ALTER TABLE run_line ADD COLUMN passed_on_pence bigint NOT NULL DEFAULT 0;
CREATE TABLE run_flow (
    id                 bigserial PRIMARY KEY,
    run_id             integer NOT NULL REFERENCES run,
    payer_body_id      integer NOT NULL REFERENCES body,
    payee_body_id      integer NOT NULL REFERENCES body,
    cofog_code         text,
    amount_pence       bigint NOT NULL,
    records            integer NOT NULL,      -- how many records (payer's, payee's) it stands for
    deducted_pence     bigint NOT NULL,       -- taken off the payer's lines
    not_deducted_pence bigint NOT NULL        -- more than the payer's lines held
);
CREATE TRIGGER run_flow_immutable BEFORE UPDATE OR DELETE ON run_flow
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- API keys for writes over HTTP: only a hash is stored; a key is revoked, never deleted.
CREATE TABLE api_key (
    id         serial PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    prefix     text NOT NULL UNIQUE,       -- the first characters, to name a key in logs
    sha256     text NOT NULL UNIQUE,
    role       text NOT NULL DEFAULT 'loader',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

-- What users loaded is never changed in place.
CREATE TRIGGER upload_batch_immutable BEFORE UPDATE OR DELETE ON upload_batch
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER spend_line_kept BEFORE DELETE ON spend_line
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER spend_scope_immutable BEFORE UPDATE OR DELETE ON spend_scope
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER boundary_immutable BEFORE UPDATE OR DELETE ON boundary
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER proxy_value_immutable BEFORE UPDATE OR DELETE ON proxy_value
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER site_immutable BEFORE UPDATE OR DELETE ON site
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER transfer_immutable BEFORE UPDATE OR DELETE ON transfer
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER function_map_immutable BEFORE UPDATE OR DELETE ON function_map
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
