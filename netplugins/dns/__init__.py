"""Cluster DNS (the ``kube-dns`` add-on): records from the API (``records``), a UDP/TCP server that
answers them and forwards the rest (``server``), and the Ray actor that runs it (``actor``)."""
