// Package resolve owns what a MEC spec leaves to its region: the instance type's
// architecture, the AMI, the VPC and subnet, and the subnet's route out.
//
// It fixes what a MEC spec leaves to its region before anything
// is created: the CPU architecture of the instance type, the AMI, the VPC and
// subnet (and that the subnet can reach the Snap Store and SSM).
package resolve
