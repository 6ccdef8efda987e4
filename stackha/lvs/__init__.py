"""LVS direct routing for MyCat: realserver setup and the director's forwarding engines.

- ``realserver``: the VIP on ``lo`` and the ARP sysctls, with the previous values kept so
  ``stop`` can put them back.
- ``nftrender`` (pure): spec + healthy realservers + their MACs -> an nftables ruleset.
- ``director``: the health-check loop that feeds the renderer and loads its output.
- ``node``: what the agent calls on every applied version.
"""
