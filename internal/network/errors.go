package network

import (
	"fmt"
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// nerr returns an error with Neutron's exception type, which clients
// read from the "type" of the error body (OverQuota,
// IpAddressAlreadyAllocated, ...).
func nerr(status int, typ, format string, args ...any) *api.Error {
	e := api.Errorf(status, format, args...)
	e.Type = typ
	return e
}

// Errors renders errors in Neutron's format.
func Errors(e *api.Error, requestID string) (string, []byte) {
	return api.NeutronErrors(e, requestID)
}

// Constructors for the errors many handlers share; the texts are
// Neutron's.

func badRequest(resource, format string, args ...any) *api.Error {
	return nerr(http.StatusBadRequest, "BadRequest", "Bad %s request: %s.", resource, fmt.Sprintf(format, args...))
}

func invalidInput(format string, args ...any) *api.Error {
	return nerr(http.StatusBadRequest, "InvalidInput", "Invalid input for operation: %s.", fmt.Sprintf(format, args...))
}

func notFound(typ, format string, args ...any) *api.Error {
	return nerr(http.StatusNotFound, typ, format, args...)
}

func inUse(typ, format string, args ...any) *api.Error {
	return nerr(http.StatusConflict, typ, format, args...)
}

func networkNotFound(id string) *api.Error {
	return notFound("NetworkNotFound", "Network %s could not be found.", id)
}

func subnetNotFound(id string) *api.Error {
	return notFound("SubnetNotFound", "Subnet %s could not be found.", id)
}

func portNotFound(id string) *api.Error {
	return notFound("PortNotFound", "Port %s could not be found.", id)
}

func subnetPoolNotFound(id string) *api.Error {
	return notFound("SubnetPoolNotFound", "Subnet pool %s could not be found.", id)
}

func securityGroupNotFound(id string) *api.Error {
	return notFound("SecurityGroupNotFound", "Security group %s does not exist", id)
}

func routerNotFound(id string) *api.Error {
	return notFound("RouterNotFound", "Router %s could not be found", id)
}

func floatingIPNotFound(id string) *api.Error {
	return notFound("FloatingIPNotFound", "Floating IP %s could not be found", id)
}

func overQuota(resource string) *api.Error {
	return nerr(http.StatusConflict, "OverQuota", "Quota exceeded for resources: ['%s'].", resource)
}
