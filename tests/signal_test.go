package tests

import "syscall"

var sigterm = syscall.SIGTERM
