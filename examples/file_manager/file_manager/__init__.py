"""The file manager's background work on underway (seed 004): a metadata scan and a copy
operation, declared as task classes with progress, status messages and a payload, watched
live by a small page of the example's own over underway's event stream."""
