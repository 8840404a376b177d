"""Schema history: numbered ``NNNN_name.sql`` files, applied in order by ``store.migrate``."""
