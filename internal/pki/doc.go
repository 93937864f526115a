// Package pki is muster's certificate authority and TLS plumbing: the master's
// CA and server certificate, short-lived client certificates for targets
// signed from their own CSRs, enlistment tokens that pin the CA, and the TLS
// configurations of both ends.
//
// Identity comes only from certificates: a target's certificate carries its
// name as the common name and its enlistment id as a URI SAN, is valid for
// client authentication only, and is looked up in the catalog by serial on
// every request.
package pki
