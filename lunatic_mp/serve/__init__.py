"""``lunatic-mp serve``: the long-running server, its config, control socket, client and HTTP routes."""
