"""The layers of docs/architecture.md: what each module may import, and no cycles."""

import ast
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
#: Modules that must not import TensorFlow (or Keras): a wrong folder or flag
#: is refused before paying for that import.
LIGHT = ("pipelines.cli", "pipelines.config", "pipelines.schema", "pipelines.beta",
         "pipelines.flags", "pipelines.runfolder", "pipelines.markdown", "export.common",
         "export.cli")
#: Library modules that import neither TensorFlow nor Keras themselves (the
#: `keras_vae` package's __init__ does): decoding and preparing pictures runs
#: in plain NumPy/Pillow, so other tools (and processes) can use them.
TF_FREE_LIBRARY = ("keras_vae.arrays", "keras_vae.images", "keras_vae.cache", "keras_vae.files")


def _imports(path, package_names):
    """Modules of ours that `path` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from package import module` imports that module; other names come
            # from the module named.
            inner = {f"{node.module}.{a.name}" for a in node.names}
            found |= (inner & package_names) or {node.module}
    return {name for name in found if name in package_names}


def test_light_modules_do_not_import_tensorflow():
    script = (f"import sys, {', '.join(LIGHT)}; "
              "print(sorted({'tensorflow', 'keras'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr[-2000:]


def test_no_import_cycle_and_the_library_imports_no_application():
    modules = {}
    for package in ("keras_vae", "pipelines", "export", "benchmarks"):
        for path in (REPO / package).glob("*.py"):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = path
    graph = {name: _imports(path, set(modules)) - {name} for name, path in modules.items()}
    for name in graph:
        if name.startswith("keras_vae"):
            assert not {m for m in graph[name] if not m.startswith("keras_vae")}, name
        if name.startswith("benchmarks"):  # A developer tool over the library alone.
            assert not {m for m in graph[name] if m.split(".")[0] in ("pipelines", "export")}, name

    def visit(name, stack):
        assert name not in stack, "import cycle: " + " -> ".join([*stack, name])
        for other in graph[name]:
            visit(other, (*stack, name))

    for name in graph:
        visit(name, ())


def test_decoding_modules_of_the_library_import_no_tensorflow():
    library = {f"keras_vae.{p.stem}" for p in (REPO / "keras_vae").glob("*.py")}
    for name in TF_FREE_LIBRARY:
        path = REPO / (name.replace(".", "/") + ".py")
        tree = ast.parse(path.read_text())
        roots = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for a in node.names}
        roots |= {node.module.split(".")[0] for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) and node.module}
        assert not roots & {"tensorflow", "keras"}, name
        assert _imports(path, library) <= set(TF_FREE_LIBRARY), name
