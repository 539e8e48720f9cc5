from gnn.layers.relation_propagation import RelationPropagation
from gnn.layers.relational_conv import RelationalConv
from gnn.layers.transition import weighted_transition

__all__ = ["RelationPropagation", "RelationalConv", "weighted_transition"]
