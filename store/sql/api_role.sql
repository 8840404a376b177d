-- The role the HTTP API connects as (store.db.api_url), applied after every migration
-- (store.migrate.migrate), so each new table is covered. Idempotent.
--
-- It reads everything and INSERTs what its endpoints write (uploads, runs, publications,
-- neighbourhoods, keys, the audit log). It may UPDATE only: a body's whole area when it is
-- first learnt, a key's revoked_at, a run attempt's outcome; DELETE only the crosswalks of a
-- set nobody has published (the triggers of 0008_trust.sql refuse the rest). It never owns a
-- table, so it can neither TRUNCATE nor disable a trigger.
DO $$
BEGIN
    CREATE ROLE placespend_api LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
        NOBYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- made already (roles belong to the whole server), or by a concurrent migration
END $$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM placespend_api;
GRANT USAGE ON SCHEMA public TO placespend_api;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO placespend_api;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO placespend_api;
GRANT INSERT ON
    upload_batch, spend_line, spend_scope, boundary_set, boundary, proxy, proxy_value,
    site_set, site, postcode, body, cofog_function, function_map, transfer,
    atom_set, atom, crosswalk, crosswalk_weight,
    run, run_line, run_slice, atom_allocation, target_allocation, run_flow,
    collection, collection_feature, publication_event, run_seal, collection_seal,
    api_key, audit_log, run_attempt
    TO placespend_api;
GRANT UPDATE (ons_code, area_set_id, area_code, source_code) ON body TO placespend_api;
GRANT UPDATE (revoked_at) ON api_key TO placespend_api;
GRANT UPDATE (status, finished_at, run_id, reason) ON run_attempt TO placespend_api;
GRANT DELETE ON crosswalk, crosswalk_weight TO placespend_api;
