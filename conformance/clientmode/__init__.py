"""Client mode (issue 18, docs/clients.md, docs/spec.md §4.11): the suite judges a client.

The user's client command runs once per scenario against the reference server, which plays
the scenario (``scenarios``: what the server does on which request; ``stage``: the server's
hook that plays it and records the client's frames); ``runner`` starts the server and the
command under a deadline; ``judge`` turns the recording into one judgement per client clause;
``casework`` is what the plugin's ``client_scenario`` fixture does for a case.
"""
