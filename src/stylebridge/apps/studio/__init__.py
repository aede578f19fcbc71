"""The web studio (`stylebridge studio`): one offline page for every method — generate, translate (draw on a canvas),
edit with sliders, StyleMapGAN local edits, compare every method on one input.

`engine.Studio` holds the models and the actions (library calls, no HTTP); `server.create_app` is the FastAPI app
that parses requests and calls it; ``static/`` is the page (plain JavaScript, nothing loaded from elsewhere).
"""
