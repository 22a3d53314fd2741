"""The core must import and run with ComfyUI's modules unavailable (house style, rule 1)."""

import subprocess
import sys
import textwrap


def test_core_imports_without_comfyui_modules():
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("comfy", "folder_paths", "server", "comfy_api", "nodes"):
                    raise ImportError("blocked " + name)
        sys.meta_path.insert(0, Block())
        import pez_nodes.core, pez_nodes.cli, pez_nodes.toyworld
        from pez_nodes.core import load_clip, invert, PEZConfig
        m = load_clip("toy")
        r = invert(m, [__import__("PIL.Image").Image.new("RGB", (40, 30), "red")], PEZConfig(steps=3, prompt_len=3))
        assert r.steps == 3 and r.text
        bad = [k for k in sys.modules if k.split(".")[0] in ("comfy", "folder_paths", "server", "comfy_api")]
        assert not bad, bad
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
