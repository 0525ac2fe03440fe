"""guard's database layer: typed models, engine factory, consumer SQL and migrations.

Private to guard: the only public door to consumer rows is
:class:`guard.repository.ConsumerRepository`, which authorizes every call and
then runs :mod:`guard.db.consumers`' statements.
"""
