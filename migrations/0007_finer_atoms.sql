-- Atoms whose straddling small areas are shared by a finer unit (Output Areas) instead of by
-- land area (geo.atoms.refine_zone_shares): the same geometry, other zone shares. An atom set
-- is one (zone set, cut set, finer set, finer proxy): NULLs for the plain area split.
ALTER TABLE atom_set
    ADD COLUMN fine_set_id integer REFERENCES boundary_set,
    ADD COLUMN fine_proxy text;
ALTER TABLE atom_set DROP CONSTRAINT atom_set_pair_key;
CREATE UNIQUE INDEX atom_set_key ON atom_set
    (zone_set_id, cut_set_id, coalesce(fine_set_id, 0), coalesce(fine_proxy, ''));
