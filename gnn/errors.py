"""What gnn raises for its callers: input that does not fit the graph, and things the graph does not hold."""


class GraphError(Exception):
    """Base of gnn's errors for its callers."""


class InvalidGraphInput(GraphError, ValueError):
    """Records, files or queries that do not fit: the message says which field or line and why."""


class NotInGraph(GraphError, LookupError):
    """An entity, relation or user the graph does not hold."""
