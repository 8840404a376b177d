-- Netting rules (allocation/netting.py): the pence of a line a run did not count because the
-- same money is counted in another dataset (CRA's local government rows; the GP payments
-- inside NHS England's rows). Like passed_on_pence, they are part of the line's explanation:
-- amount = allocated + passed on + netted + unallocated (with its reason).
ALTER TABLE run_line ADD COLUMN netted_pence bigint NOT NULL DEFAULT 0;
