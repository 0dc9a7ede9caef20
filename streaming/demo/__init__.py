"""`driftloop demo`: the whole loop on a scheduled drift, in one process.

- :mod:`.run` — the plan, the services running together, the live status;
- :mod:`.outcomes` — what the run did, as data, and the summary;
- :mod:`.report` — the self-contained HTML report.
"""
