from graphfuse.gnn.layers.relation_propagation import RelationPropagation
from graphfuse.gnn.layers.relational_conv import RelationalConv
from graphfuse.gnn.layers.transition import weighted_transition

__all__ = ["RelationPropagation", "RelationalConv", "weighted_transition"]
