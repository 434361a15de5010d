"""The layers of docs/architecture.md: what each module may import, and no cycles."""

import ast
import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
#: Modules that must not import TensorFlow (or Keras): a wrong folder or flag
#: is refused before paying for that import.
LIGHT = ("pipelines.cli", "pipelines.config", "pipelines.schema", "pipelines.beta",
         "pipelines.flags", "pipelines.markdown", "pipelines.exportcmd", "export.runfolder",
         "export.lock", "export.common")
#: Library modules that import neither TensorFlow nor Keras (nor does the
#: `keras_vae` package's lazy __init__): decoding and preparing pictures runs
#: in plain NumPy/Pillow, and β's schedules and controllers are plain Python,
#: so a config is checked and other tools (and processes) use them without it.
TF_FREE_LIBRARY = ("keras_vae.arrays", "keras_vae.images", "keras_vae.cache", "keras_vae.files",
                   "keras_vae.glossary", "keras_vae.grids", "keras_vae.schedules",
                   "keras_vae.controllers")


#: The layers of docs/architecture.md, lowest first: a module may import
#: modules of its own layer and of the layers below, never above.
LAYERS = (
    ("keras_vae",),  # The library.
    ("export.runfolder", "export.lock"),  # A run folder, as train writes it and export reads it.
    ("export",),  # The export stage.
    ("pipelines",),  # The `keras-vae` command on top.
)
#: Packages beside the layers, and what they may import.
BESIDE = {"benchmarks": ("keras_vae", "benchmarks")}  # A developer tool over the library alone.
#: A module named in a string: `"module:function"`, as a dispatcher names
#: what it imports, or the argument of `importlib.import_module`/`__import__`
#: (not every dotted string: `logging.getLogger("keras_vae.data")` imports nothing).
NAMED = re.compile(r"((?:keras_vae|pipelines|export|benchmarks)(?:\.\w+)*)(:\w+)?")
IMPORTERS = ("import_module", "__import__")


def _modules():
    """{dotted name: path} of every module of every package."""
    modules = {}
    for package in ("keras_vae", "pipelines", "export", "benchmarks"):
        for path in (REPO / package).rglob("*.py"):
            if "node_modules" in path.parts:
                continue
            parts = path.relative_to(REPO).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _docstrings(tree):
    """The string constants that are docstrings (which name modules in prose)."""
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)}


def _imports(path, package_names, strings=True):
    """Modules of ours that `path` imports: at module level, inside
    functions, or (if `strings`) by a string naming them (importlib)."""
    found = set()
    tree = ast.parse(path.read_text())
    docstrings = _docstrings(tree)
    imported = {id(node.args[0]) for node in ast.walk(tree)
                if isinstance(node, ast.Call) and node.args
                and getattr(node.func, "attr", getattr(node.func, "id", None)) in IMPORTERS}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from package import module` imports that module; other names come
            # from the module named.
            inner = {f"{node.module}.{a.name}" for a in node.names}
            found |= (inner & package_names) or {node.module}
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and strings and id(node) not in docstrings):
            match = NAMED.fullmatch(node.value)
            if match and (match.group(2) or id(node) in imported):
                found.add(match.group(1))
    return {name for name in found if name in package_names}


def _layer(name):
    """The index in LAYERS of module `name` (the most specific entry wins)."""
    matches = [(len(prefix), index) for index, prefixes in enumerate(LAYERS)
               for prefix in prefixes if name == prefix or name.startswith(prefix + ".")]
    return max(matches)[1] if matches else None


def _graph(strings=True):
    modules = _modules()
    return {name: _imports(path, set(modules), strings) - {name}
            for name, path in modules.items()}


def test_light_modules_do_not_import_tensorflow():
    script = (f"import sys, {', '.join(LIGHT)}; "
              "print(sorted({'tensorflow', 'keras'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr[-2000:]


def test_the_tensorflow_free_library_imports_without_tensorflow():
    """`keras_vae/__init__.py` is lazy (PEP 562): importing the package and
    its TF-free modules leaves TensorFlow and Keras unimported; the first
    class asked for imports them."""
    script = (f"import sys, keras_vae, {', '.join(TF_FREE_LIBRARY)}; "
              "print(sorted({'tensorflow', 'keras'} & set(sys.modules))); "
              "keras_vae.VAE; print(sorted({'tensorflow', 'keras'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.stdout.split("\n")[:2] == ["[]", "['keras', 'tensorflow']"], \
        result.stdout + result.stderr[-2000:]


def test_every_registered_class_is_registered_before_a_load():
    """Keras finds a saved class of ours only once its module has run
    `register_keras_serializable`: `keras_vae.SERIALIZABLE` names every such
    module, and `import keras_vae` registers them when Keras is there."""
    import keras_vae

    registering = {f"keras_vae.{p.stem}" for p in (REPO / "keras_vae").glob("*.py")
                   if "register_keras_serializable(" in p.read_text()}
    assert registering <= set(keras_vae.SERIALIZABLE)
    assert set(keras_vae.SERIALIZABLE) <= set(_modules())


def test_a_saved_model_loads_after_import_keras_vae(tmp_path):
    import keras_vae

    path = tmp_path / "ae.keras"
    keras_vae.build_autoencoder((8, 8, 1), latent_dim=2, filters=(4, 8)).save(path)
    for imports in ("import keras, keras_vae",  # Keras first: registered at import.
                    "import keras_vae, keras",  # Ours first: registered once Keras is.
                    "import keras_vae, tensorflow, keras",
                    "import keras_vae, keras; keras_vae.register_serializables()",
                    # A module of ours first: its own `import keras` ends while it is
                    # half-imported, so registering waits for it to finish.
                    "import keras_vae.vae, keras",
                    "from keras_vae.likelihoods import Gaussian; import keras",
                    "import keras_vae.steps, keras"):
        script = f"{imports}; import sys; print(type(keras.saving.load_model(sys.argv[1])).__name__)"
        result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                                text=True, cwd=REPO, timeout=120)
        assert result.stdout.strip() == "Autoencoder", imports + result.stderr[-2000:]


def test_imports_run_one_way():
    """pipelines -> export -> the run folder -> keras_vae; benchmarks over
    keras_vae alone. Nothing points back up, importlib strings included."""
    wrong = []
    for name, imported in _graph().items():
        package = name.split(".")[0]
        for other in sorted(imported):
            if package in BESIDE:
                ok = other.split(".")[0] in BESIDE[package]
            else:
                ok = _layer(other) is not None and _layer(other) <= _layer(name)
            if not ok:
                wrong.append(f"{name} -> {other}")
    assert not wrong, "imports against the layers: " + ", ".join(wrong)


def test_importlib_strings_are_seen(tmp_path):
    graph = _graph()
    assert {"pipelines.train", "pipelines.exportcmd"} <= graph["pipelines.cli"]
    path = tmp_path / "module.py"
    path.write_text('import importlib\nimportlib.import_module("export.serve")\n'
                    'import logging\nlogging.getLogger("keras_vae.data")\n')
    assert _imports(path, {"export.serve", "keras_vae.data"}) == {"export.serve"}


def test_no_import_cycle():
    # Import statements only: the dispatcher's strings are imported at run
    # time, by which point `pipelines.cli`, which its subcommands import, is.
    graph = _graph(strings=False)

    def visit(name, stack):
        assert name not in stack, "import cycle: " + " -> ".join([*stack, name])
        for other in graph[name]:
            visit(other, (*stack, name))

    for name in graph:
        visit(name, ())


FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def test_the_library_speaks_python_not_cli():
    """No message of keras_vae/ (its strings, docstrings aside) writes
    "keras-vae:" or names a command-line `--flag`: a notebook user has
    neither; the pipelines translate (e.g. `pipelines.runcallbacks.CollapseAlarm`)."""
    wrong = []
    for path in sorted((REPO / "keras_vae").rglob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docstrings
                    and ("keras-vae:" in node.value or FLAG.search(node.value))):
                wrong.append(f"{path.name}:{node.lineno}: {node.value[:60]!r}")
    assert not wrong, "the library speaks CLI: " + "; ".join(wrong)


def _imported_on_import(tree):
    """The import statements that run when the module is imported: all but
    those inside functions (a function may import Keras when called, as
    `schedules.serialize` does)."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))
    return found


def test_tensorflow_free_modules_of_the_library_import_none_of_it():
    library = {f"keras_vae.{p.stem}" for p in (REPO / "keras_vae").glob("*.py")}
    for name in TF_FREE_LIBRARY:
        path = REPO / (name.replace(".", "/") + ".py")
        imports = _imported_on_import(ast.parse(path.read_text()))
        roots = {a.name.split(".")[0] for node in imports if isinstance(node, ast.Import)
                 for a in node.names}
        roots |= {node.module.split(".")[0] for node in imports
                  if isinstance(node, ast.ImportFrom) and node.module}
        assert not roots & {"tensorflow", "keras"}, name
        assert _imports(path, library) <= set(TF_FREE_LIBRARY), name


#: Modules of at most this many lines, functions of at most FUNCTION_LINES
#: lines of code (their docstrings aside): one concern a module, one step a
#: function. Reports (long Markdown writers) are exempt.
MODULE_LINES, FUNCTION_LINES = 350, 60
REPORTS = ("pipelines/report.py", "benchmarks/report.py")


def test_modules_and_functions_are_short():
    long = []
    for name, path in _modules().items():
        shown = str(path.relative_to(REPO))
        if shown in REPORTS:
            continue
        text = path.read_text()
        if len(text.splitlines()) > MODULE_LINES:
            long.append(f"{shown}: {len(text.splitlines())} lines")
        tree = ast.parse(text)
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = node.body[0]
                start = (first.end_lineno + 1 if isinstance(first, ast.Expr)
                         and id(first.value) in docstrings else first.lineno)
                if node.end_lineno - start + 1 > FUNCTION_LINES:
                    long.append(f"{shown}: {node.name} {node.end_lineno - start + 1} lines")
    assert not long, "too long: " + "; ".join(long)
