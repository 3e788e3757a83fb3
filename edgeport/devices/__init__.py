"""Devices as a noun: boards the user owns, reached with OpenSSH's own client.

:mod:`config` keeps the named devices (``devices.json``: addresses and key paths, no secrets),
:mod:`ssh` runs commands and copies files through ``ssh`` (the user's agent, ssh_config and
known_hosts apply; BatchMode, so nothing is ever asked or accepted silently) and turns its failures
into one clear line, :mod:`probe` asks the device what it is (stdlib only, on the device's python3),
:mod:`command` is the ``edgeport device ...`` commands.
"""
