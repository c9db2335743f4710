# Does nothing: what is measured is the cost runctl adds around a training process.
