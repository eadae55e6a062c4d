"""The heartbeat: per-thread scheduled decisions on the Ledger.

Submodules (imported on demand, never from here, so importing the package starts nothing and
pulls in nothing heavy): ``config`` (HeartbeatConfig), ``schedule`` (pure due-time and
active-hours maths), ``instructions`` (HEARTBEAT.md), ``context`` and ``prompt`` (what the LLM
sees), ``decision`` (the decision schema, lenient parsing, strict validation) and ``executor``
(one heartbeat for one thread).
"""
