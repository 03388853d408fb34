"""Reference modules. Each is a package with contracts / domain / application /
infrastructure / api layers; only ``contracts`` may be imported by another module."""
