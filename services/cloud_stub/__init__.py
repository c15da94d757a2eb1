"""The cloud-stub actor: the pretend cloud's CloudProvider API and load balancers."""
