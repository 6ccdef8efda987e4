"""Trust anchors: Ed25519 signatures over the parts of a version (stackha.trust.signing)."""
