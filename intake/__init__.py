"""Reading what users upload: files opened safely, values parsed strictly, every problem named.

Nothing here touches the database: a reader returns tidy frames or raises
:class:`domain.errors.Rejected` listing each row or feature at fault with its fix. The
orchestrator (:mod:`placespend.load`) stores what the readers accept, in one transaction.
"""
