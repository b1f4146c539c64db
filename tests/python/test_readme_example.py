"""The README's Python example (the block after the marker
`<!-- python example: tests/python/test_readme_example.py -->`) runs as
written from the repository root: torchvision's maskrcnn_resnet50_fpn trains
from pasteflow.Loader on the bundled sample. Oracle: the example's own
output (every step's loss printed and finite, both epochs visited)."""
import math
import os
import re
import subprocess
import sys
import unittest

SOURCE = os.environ.get("PASTEFLOW_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
MARKER = "<!-- python example: tests/python/test_readme_example.py -->"


def example_code():
    with open(os.path.join(SOURCE, "README.md"), encoding="utf-8") as f:
        text = f.read()
    at = text.index(MARKER)
    block = re.search(r"```python\n(.*?)```", text[at:], re.S)
    return block.group(1)


class ReadmeExample(unittest.TestCase):
    def test_runs_as_written(self):
        code = example_code()
        self.assertLessEqual(len(code.strip().splitlines()), 25)
        p = subprocess.run([sys.executable, "-c", code], cwd=SOURCE, capture_output=True, text=True, timeout=1200)
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        losses = [(int(m.group(1)), float(m.group(2)))
                  for m in re.finditer(r"epoch (\d+) step \d+ loss ([-+0-9.eE]+|nan|inf)", p.stdout)]
        self.assertGreater(len(losses), 10, p.stdout)
        self.assertEqual({e for e, _ in losses}, {0, 1})
        self.assertTrue(all(math.isfinite(v) for _, v in losses), p.stdout)


if __name__ == "__main__":
    unittest.main()
