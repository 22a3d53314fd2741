"""The paper's evaluation (Sec. 4, Table 1; Figures 5 and 6): a learned prompt is judged by what it generates.

target image → PEZ prompt → text-to-image model → new images, scored against the target with a
*reference* CLIP that was not used for optimisation. ``metric`` is the score, ``reference`` the judge,
``zero_shot`` how well a judge recognises the toy world's attributes, ``run`` the whole loop behind
``pez eval``, ``grid`` its picture. Nothing here imports diffusers; the generator is passed in.
"""
