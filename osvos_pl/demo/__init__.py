"""The browser demo: ``python -m osvos_pl.demo`` (``pip install -e ".[demo]"``).

A Gradio page over predict's own run (``osvos_pl.predict.segment_clip``: the clip data module
and the ``OneShotSegmenter`` of the online stage): ``session`` does the work and knows nothing
of Gradio, ``app`` lays out the page, ``handlers`` answers its events, ``__main__`` reads
``conf/demo.yaml`` and serves it.
"""
