"""``guard load``: a bounded load generator for guard's HTTP API, and the invariants it proves.

``guard load`` drives a running guard (through the ``trusted`` pipeline's
identity headers) from several personas at once: an admin, a member and
reader of project A, a member (without reader) of project B and a reader of
project B. Each thread keeps one HTTP/1.1 keep-alive connection and plays a
mix of list, show, create, update-with-generation and delete. Updates
deliberately aim at a few consumers shared by every writer of a project, with
the generation each writer last saw, so the compare-and-swap is contended;
a writer that loses reads the consumer again and retries once, as a client
should.

Every request becomes a :class:`Record`. When the run ends (after a fixed
number of requests or seconds, whichever comes first), :func:`check_invariants`
judges the history, optionally against the database read back read-only:

* ``acknowledged_writes_kept``: every acknowledged create and update is in the
  database with at least its acknowledged generation (exactly it, unless an
  update of unknown outcome followed), and every acknowledged delete is gone;
* ``generations_monotonic``: an acknowledged update answers the sent
  generation + 1, no two acknowledged writes of one consumer share a
  generation, and no response shows a generation older than one acknowledged
  before the request started (nor a consumer whose delete was acknowledged);
* ``no_server_errors``: every request got an answer, and no 5xx but 503
  ``guard.unavailable`` during an outage window the caller marked;
* ``project_isolation``: a project-scoped persona never receives a consumer
  or a project id of another project, and a uuid of another project answers
  exactly as a missing one (404).

Only loopback targets are accepted: this is a tool to prove a deployment on a
test host, not to load someone else's service.

One module a concern: :mod:`.target` (loopback-only targets), :mod:`.personas`
(who calls), :mod:`.history` (what happened), :mod:`.invariants` (what must
hold), :mod:`.readback` (the database's final rows, read-only),
:mod:`.engine` (the threads that make the requests) and :mod:`.report`
(figures and verdicts).
"""
