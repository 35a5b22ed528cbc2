"""The web interface (``gensim ui``): a Gradio page over the controller and the query layer."""
