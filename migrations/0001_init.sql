-- Placespend schema, first cut. Geometry is stored in British National Grid (EPSG:27700);
-- money in whole pence (bigint). Runs and everything they produced are immutable once written.

CREATE EXTENSION IF NOT EXISTS postgis;

-- Boundary sets (wards of a vintage, LSOAs, boroughs, drawn neighbourhoods...) and their units.
CREATE TABLE boundary_set (
    id            serial PRIMARY KEY,
    slug          text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]*$'),
    name          text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('ward', 'lsoa', 'oa', 'msoa', 'borough', 'region',
                                                'constituency', 'agency_area', 'neighbourhood')),
    vintage       text NOT NULL,
    source        text NOT NULL,          -- where it came from (file, upload, derived from)
    licence       text NOT NULL,
    attribution   text NOT NULL,
    content_sha256 text NOT NULL,         -- of the file or the derivation, for idempotent loads
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE boundary (
    id          bigserial PRIMARY KEY,
    set_id      integer NOT NULL REFERENCES boundary_set ON DELETE CASCADE,
    code        text NOT NULL,
    name        text NOT NULL,
    parent_code text,
    geom        geometry(MultiPolygon, 27700) NOT NULL CHECK (ST_IsValid(geom)),
    area_m2     double precision NOT NULL CHECK (area_m2 > 0),
    UNIQUE (set_id, code)
);
CREATE INDEX boundary_geom_idx ON boundary USING gist (geom);

-- Proxies: a quantity per unit of a boundary set (residents, residents aged 0-15, pupils...).
CREATE TABLE proxy (
    id          serial PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]*$'),
    name        text NOT NULL,
    unit_set_id integer NOT NULL REFERENCES boundary_set,
    year        integer NOT NULL,
    source      text NOT NULL,
    licence     text NOT NULL,
    attribution text NOT NULL
);

CREATE TABLE proxy_value (
    proxy_id  integer NOT NULL REFERENCES proxy ON DELETE CASCADE,
    unit_code text NOT NULL,
    value     double precision NOT NULL CHECK (value >= 0),
    PRIMARY KEY (proxy_id, unit_code)
);

-- Public bodies and money passed between them (transfers are counted once, at the spender).
CREATE TABLE body (
    id        serial PRIMARY KEY,
    slug      text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9_]*$'),
    name      text NOT NULL,
    kind      text NOT NULL,              -- council, regional, nhs, police, department...
    ons_code  text
);

CREATE TABLE transfer (
    id             bigserial PRIMARY KEY,
    from_body_id   integer NOT NULL REFERENCES body,
    to_body_id     integer NOT NULL REFERENCES body,
    financial_year text NOT NULL CHECK (financial_year ~ '^\d{4}-\d{2}$'),
    cofog_code     text,
    amount_pence   bigint NOT NULL
);

CREATE TABLE cofog_function (
    code        text PRIMARY KEY CHECK (code ~ '^\d{2}(\.\d(\.\d)?)?$'),
    description text NOT NULL
);

-- Every load is a batch with the hash of its content: the same file twice is refused.
CREATE TABLE upload_batch (
    id         serial PRIMARY KEY,
    kind       text NOT NULL,             -- spend, boundaries, proxy
    filename   text NOT NULL,
    sha256     text NOT NULL,
    rows       integer NOT NULL,
    loaded_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, sha256)
);

CREATE TABLE spend_line (
    id             bigserial PRIMARY KEY,
    batch_id       integer NOT NULL REFERENCES upload_batch,
    body_id        integer NOT NULL REFERENCES body,
    financial_year text NOT NULL CHECK (financial_year ~ '^\d{4}-\d{2}$'),
    line           text NOT NULL,         -- the original line as published (e.g. RS service line)
    cofog_code     text NOT NULL REFERENCES cofog_function,
    amount_pence   bigint NOT NULL,       -- signed: net expenditure can be negative
    area_set_id    integer NOT NULL REFERENCES boundary_set,
    area_code      text NOT NULL,         -- the area the body reported the line for
    source_row     integer,               -- row in the source file, for provenance
    UNIQUE (body_id, financial_year, line, area_set_id, area_code)
);

-- Atoms: small areas cut by a target geography; crosswalks: atoms -> units of any set.
CREATE TABLE atom_set (
    id          serial PRIMARY KEY,
    slug        text NOT NULL UNIQUE,
    zone_set_id integer NOT NULL REFERENCES boundary_set,
    cut_set_id  integer NOT NULL REFERENCES boundary_set,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE atom (
    atom_set_id integer NOT NULL REFERENCES atom_set ON DELETE CASCADE,
    atom_id     integer NOT NULL,
    zone_code   text,                     -- NULL: part of a cut unit no small area covers
    cut_code    text NOT NULL,
    zone_share  double precision NOT NULL CHECK (zone_share >= 0 AND zone_share <= 1.000001),
    area_m2     double precision NOT NULL,
    geom        geometry(MultiPolygon, 27700) NOT NULL,
    PRIMARY KEY (atom_set_id, atom_id)
);
CREATE INDEX atom_geom_idx ON atom USING gist (geom);

CREATE TABLE crosswalk (
    id            serial PRIMARY KEY,
    atom_set_id   integer NOT NULL REFERENCES atom_set ON DELETE CASCADE,
    target_set_id integer NOT NULL REFERENCES boundary_set ON DELETE CASCADE,
    basis         text NOT NULL DEFAULT 'area',
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (atom_set_id, target_set_id, basis)
);

CREATE TABLE crosswalk_weight (
    crosswalk_id integer NOT NULL REFERENCES crosswalk ON DELETE CASCADE,
    atom_id      integer NOT NULL,
    target_code  text NOT NULL,
    weight       double precision NOT NULL CHECK (weight > 0 AND weight <= 1.000001),
    PRIMARY KEY (crosswalk_id, atom_id, target_code)
);

-- Runs: one apportionment, written in one transaction, immutable afterwards.
CREATE TABLE run (
    id             serial PRIMARY KEY,
    financial_year text NOT NULL,
    atom_set_id    integer NOT NULL REFERENCES atom_set,
    inputs_sha256  text NOT NULL,         -- lines, proxies, proxy table, atoms: same inputs, same run
    params         jsonb NOT NULL,        -- proxy table, bodies, target sets
    code_version   text NOT NULL,
    conservation   jsonb NOT NULL,
    status         text NOT NULL DEFAULT 'published' CHECK (status IN ('published')),
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE allocation (
    run_id        integer NOT NULL REFERENCES run,
    spend_line_id bigint NOT NULL REFERENCES spend_line,
    atom_id       integer NOT NULL,
    amount_pence  bigint NOT NULL,
    method        text NOT NULL CHECK (method IN ('direct', 'agency_estimate', 'proxy', 'area',
                                                  'best_fit')),
    proxy_slug    text,
    PRIMARY KEY (run_id, spend_line_id, atom_id)
);

CREATE TABLE target_allocation (
    run_id        integer NOT NULL REFERENCES run,
    target_set_id integer NOT NULL REFERENCES boundary_set,
    spend_line_id bigint NOT NULL REFERENCES spend_line,
    target_code   text NOT NULL,
    method        text NOT NULL,
    amount_pence  bigint NOT NULL,
    PRIMARY KEY (run_id, target_set_id, spend_line_id, target_code, method)
);

-- Collections: what the OGC API publishes (one run seen through one target set).
CREATE TABLE collection (
    id            text NOT NULL CHECK (id ~ '^[a-z0-9][a-z0-9_-]*$'),   -- no dots: QGIS
    run_id        integer NOT NULL REFERENCES run,
    target_set_id integer NOT NULL REFERENCES boundary_set,
    title         text NOT NULL,
    description   text NOT NULL,
    properties    jsonb NOT NULL,         -- ordered property names and types, for the schema
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, run_id)
);

CREATE TABLE collection_feature (
    collection_id text NOT NULL,
    run_id        integer NOT NULL,
    code          text NOT NULL,
    properties    json NOT NULL,          -- json, not jsonb: keeps the property order
    PRIMARY KEY (collection_id, run_id, code),
    FOREIGN KEY (collection_id, run_id) REFERENCES collection
);

-- Published results never change: refuse UPDATE and DELETE on everything a run wrote.
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'published results are immutable (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'P0001', HINT = 'start a new run instead';
END $$;

CREATE TRIGGER run_immutable BEFORE UPDATE OR DELETE ON run
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER allocation_immutable BEFORE UPDATE OR DELETE ON allocation
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER target_allocation_immutable BEFORE UPDATE OR DELETE ON target_allocation
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER collection_immutable BEFORE UPDATE OR DELETE ON collection
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER collection_feature_immutable BEFORE UPDATE OR DELETE ON collection_feature
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER spend_line_immutable BEFORE UPDATE ON spend_line
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
