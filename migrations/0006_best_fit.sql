-- ONS-style best-fit publications: a run summed into a target set with each small area wholly
-- in one target (allocation/pipeline.py, fit = 'best_fit'), beside the default publication that
-- splits small areas by share ('split'). Both can exist for one run and target set.
ALTER TABLE collection
    ADD COLUMN fit text NOT NULL DEFAULT 'split' CHECK (fit IN ('split', 'best_fit'));
ALTER TABLE target_allocation
    ADD COLUMN fit text NOT NULL DEFAULT 'split' CHECK (fit IN ('split', 'best_fit'));
ALTER TABLE target_allocation DROP CONSTRAINT target_allocation_pkey,
    ADD PRIMARY KEY (run_id, target_set_id, fit, target_code, slice_id);
