package compute

// InstanceColumnsForTest lets benchmarks copy server rows in SQL.
const InstanceColumnsForTest = instanceCols
