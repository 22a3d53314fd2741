"""Caption a whole dataset: ``pez batch`` (one prompt per image, many images per encoder pass, resumable).

``jobs`` lists the images and derives each one's seed from its name; ``journal`` is the append-only
``prompts.jsonl`` that makes a run resumable; ``local`` runs the job on this machine in batches; ``ray_data``
runs the same job on Ray Data (optional ``ray``). The core knows nothing of any of it.
"""
