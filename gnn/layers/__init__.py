from gnn.layers.relation_propagation import RelationPropagation

__all__ = ["RelationPropagation"]
