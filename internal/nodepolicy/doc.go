// Package nodepolicy owns the IAM documents of a MEC's node role: who may assume
// it and what its inline policy lets a node do with Parameter Store.
//
// It writes the IAM documents of a MEC's node role: who may
// assume it, and what its inline policy lets a node do with Parameter Store.
// launch-nodes puts them on each MEC's role; the stack's permissions
// boundary and its tests are written against the same documents.
package nodepolicy
