"""Passwords never show in `push-config`'s diff or `config show`, whatever the quoting
(found in review: password='…' in single quotes was shown)."""

from __future__ import annotations

import pytest

from stackha.coordinator.publish import MASK, mask_secrets


@pytest.mark.parametrize("text", [
    '<property name="password">s3cret</property>',
    "<property name='password'>s3cret</property>",
    '<property  name = "password" >s3cret</property>',
    '<readHost host="r1" url="x" user="u" password="s3cret"/>',
    "<writeHost host='w1' url='x' user='u' password='s3cret'/>",
    "<writeHost host=w1 password = 's3cret' />",
    "password: s3cret",
    "db.password=s3cret",
])
def test_every_quoting_style_is_masked(text):
    masked = mask_secrets(text)
    assert "s3cret" not in masked and MASK in masked
