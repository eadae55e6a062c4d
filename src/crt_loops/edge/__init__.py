"""The HTTP edge shared by the API and the Ledger: what a request must be before any route runs.

Outermost first (see :func:`crt_loops.edge.stack.install_edge`)::

    HostAllowList        421: a Host this service is not known by (DNS rebinding)
    BrowserOriginGuard   403: another web page drives the browser (CSRF); 415: non-JSON body
    (the API's token / loopback check)
    BodySizeLimit        413: a body over the limit, declared or streamed
    InvalidTextGuard     422: a JSON body with text that cannot be stored (lone surrogates, NUL)

:mod:`crt_loops.edge.text` holds the text rules the routes apply to single fields (blank-looking
titles, bidi controls, control characters).
"""
