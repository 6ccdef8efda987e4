"""Nothing a bundle ships runs during validation: the nginx lexer, the directives and includes
it refuses, and shipped programs refused by content."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackha.checks.nginx import refuse_code
from stackha.checks.nginxconf import NginxSyntaxError, code_loading_problems, directives
from stackha.model.bundle import shipped_code_reason
from testkit import EXAMPLE_CONFIGS


def test_lexer_reads_what_nginx_reads():
    found = directives('"load_module" x.so; a${b}c d}e;\nset $x "a\\"b"; # c ;\n'
                       "# load_module y.so;\nhttp { server { listen 80; } }\n"
                       "l\\oad_module z.so;")
    assert [(d.name, d.args, d.line) for d in found[:4]] == [
        ("load_module", ("x.so",), 1), ("a${b}c", ("d}e",), 1), ("set", ("$x", 'a"b'), 2),
        ("http", (), 4)]
    # nginx keeps a backslash before an ordinary letter: that is no load_module
    assert found[-1].name == "l\\oad_module"


@pytest.mark.parametrize("text", ['a "b;', "a b", "http { a b; ", "a; }", '"a"b;', "; a;",
                                  "'pe''rl';"])
def test_lexer_refuses_what_it_cannot_read_like_nginx(text):
    with pytest.raises(NginxSyntaxError):
        directives(text)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "conf"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


BASE = "events {}\nhttp {\n%s\n}\n"


@pytest.mark.parametrize(("files", "what"), [
    ({"nginx.conf": "load_module modules/x.so;\n" + BASE % ""}, "'load_module'"),
    ({"nginx.conf": '"load_module" /tmp/x.so;\n' + BASE % ""}, "'load_module'"),
    ({"nginx.conf": BASE % "include conf.d/*.conf;",
      "conf.d/a.conf": "# fine\n", "conf.d/b.conf": "perl_modules /tmp;\n"}, "'perl_modules'"),
    ({"nginx.conf": BASE % "include sub.conf;", "sub.conf": "include deeper.txt;",
      "deeper.txt": "load_module x.so;"}, "'load_module'"),
    ({"nginx.conf": BASE % "init_by_lua_block { os.execute(\"id\"); }"}, "'init_by_lua_block'"),
    ({"nginx.conf": BASE % "js_import /tmp/x.js;"}, "'js_import'"),
    ({"nginx.conf": "ssl_engine /tmp/engine.so;\n" + BASE % ""}, "'ssl_engine'"),
    ({"nginx.conf": "env LD_PRELOAD=/tmp/x.so;\n" + BASE % ""}, "env LD_PRELOAD"),
    ({"nginx.conf": BASE % "include /tmp/evil.conf;"}, "outside the configuration"),
    ({"nginx.conf": BASE % "include ../../../etc/passwd;"}, "outside the configuration"),
    ({"nginx.conf": BASE % "include /etc/nginx/../../tmp/x.conf;"},
     "outside the configuration"),
    ({"nginx.conf": BASE % 'return 200 "unterminated;'}, "not readable"),
])
def test_code_and_escaping_includes_are_refused(tmp_path, files, what):
    problems = code_loading_problems(_tree(tmp_path, files))
    assert problems and any(what in reason for _, _, reason in problems), problems


def test_includes_of_system_nginx_files_and_plain_configs_pass(tmp_path):
    root = _tree(tmp_path, {"nginx.conf": "include /etc/nginx/modules-enabled/*.conf;\n"
                            + BASE % "include mime.types; include /usr/share/nginx/x.conf;",
                            "mime.types": "types { text/html html; }\n"})
    assert code_loading_problems(root) == []
    assert code_loading_problems(EXAMPLE_CONFIGS / "nginx") == []


def test_a_shipped_shared_object_is_refused_whatever_its_name(tmp_path):
    root = _tree(tmp_path, {"nginx.conf": BASE % ""})
    (root / "html").mkdir()
    (root / "html/logo.png").write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 60)
    problems = refuse_code(root, {str(root / "html/logo.png"): "configs/nginx/html/logo.png"})
    assert [p.file for p in problems] == ["configs/nginx/html/logo.png"]
    assert "ELF" in problems[0].reason


@pytest.mark.parametrize(("path", "content"), [
    ("nginx/modules/x.so", b"not even ELF"), ("nginx/html/a.bin", Path("/bin/true").read_bytes()),
    ("mycat/io/mycat/Evil.class", b"\xca\xfe\xba\xbe\0\0\0\x34"), ("mycat/lib.jar", b"PK\3\4"),
    ("nginx/x.so.1", b""), ("nginx/x.DLL", b"MZ"),
])
def test_bundle_code_is_refused(path, content):
    assert shipped_code_reason(path, content)


@pytest.mark.parametrize("path", ["nginx/nginx.conf", "nginx/html/index.html",
                                  "mycat/schema.xml", "nginx/html/so.html"])
def test_bundle_configuration_passes(path):
    assert shipped_code_reason(path, (EXAMPLE_CONFIGS / "nginx/nginx.conf").read_bytes()) is None
