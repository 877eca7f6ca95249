"""Docker model targets: specs, image builds, container lifecycle and cold-start measurement."""
