"""The simulated hypervisor: domains, vCPUs, hypercall dispatch and handlers."""
