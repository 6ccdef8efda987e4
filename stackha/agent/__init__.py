"""The node agent: turns published versions into running configuration on one node."""
