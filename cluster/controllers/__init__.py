"""Controllers in the manner of kube-controller-manager: each watches objects through informers and
acts to reach the desired state; ``manager`` runs them in one Ray actor (``controller-manager``)."""
