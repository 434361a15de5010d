"""The README's Python example runs as written (docs and code tell one story)."""

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_fit_example_runs_as_written():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = blocks[0]
    assert "model.fit(" in example and len(example.strip().splitlines()) <= 10
    namespace = {}
    exec(compile(example, str(README), "exec"), namespace)
    samples = namespace["samples"].numpy()
    assert samples.shape == (16, 8, 8, 1)
    assert np.isfinite(samples).all()
    assert namespace["alarm"].alarms == []  # The example's code does not collapse.
