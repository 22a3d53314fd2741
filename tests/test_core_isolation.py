"""The core must import and run with ComfyUI's modules unavailable (ARCHITECTURE.md, rule 1)."""

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


def test_node_logic_and_the_metric_run_without_diffusers_transformers_or_ray():
    """The heavy optional dependencies are imported only where used: never by the nodes' logic or the metric."""
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("diffusers", "transformers", "ray"):
                    raise ImportError("blocked " + name)
        sys.meta_path.insert(0, Block())
        import torch
        import pez_nodes.cli, pez_nodes.evaluate.metric, pez_nodes.generate
        from pez_nodes.comfy import node_bodies, native_text, native_vision, workflow_clip
        from pez_nodes import toyworld as tw
        clip = node_bodies.load_model("toy (bundled, offline)", "cpu")
        pic = lambda s: torch.from_numpy(__import__("numpy").asarray(tw.render(s, 48, 0), dtype="float32")[None] / 255)
        a, b = pic(tw.Scene("circle", "red", "large", "grass")), pic(tw.Scene("star", "blue", "small", "night"))
        mean, sims = node_bodies.image_similarity(torch.cat([a, a]), torch.cat([a, b]), pez_clip=clip)
        assert abs(sims[0] - 1) < 1e-5 and sims[1] < 0.99 and abs(mean - sum(sims) / 2) < 1e-9, sims
        try:
            pez_nodes.generate.load_generator("toy")
        except ValueError as e:
            assert "pip install 'pez-hard-prompts[generate]'" in str(e)
        else:
            raise AssertionError("generation ran without diffusers")
        import pez_nodes.lm, pez_nodes.lm.load, pez_nodes.lm.tune, pez_nodes.cli.lm_cmd, pez_nodes.core.optim.fluency
        for name in ("toy_lm_small", "toy_lm_large"):
            try:
                pez_nodes.lm.load.load_lm(name)
            except ValueError as e:
                assert "pip install 'pez-hard-prompts[lm]'" in str(e), e
            else:
                raise AssertionError("an LM loaded without transformers")
        config = node_bodies.make_config(steps=2, prompt_len=2, fluency=0.1)
        try:  # fluency on the toy CLIP loads its LM: without transformers, one clear error
            node_bodies.invert(clip, a, config)
        except ValueError as e:
            assert "pez-hard-prompts[lm]" in str(e), e
        else:
            raise AssertionError("fluency ran without its LM")
        assert not [k for k in sys.modules if k.split(".")[0] in ("diffusers", "transformers", "ray")]
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
