#!/bin/sh
# add-device.sh KIND ID: give a device MQTT credentials that let it publish
# only city/KIND/ID (and its heartbeat city/status/ID).
#
#   KIND  traffic | camera | emergency | units
#   ID    1-64 of A-Z a-z 0-9 . _ - (CONTRACT section 1)
#
# The password is generated (144 random bits) and printed once on stdout,
# or taken from the first line of standard input with --password-stdin.
# Running it again for an existing ID rotates the password and leaves the
# ACL alone. Then reload the broker: kill -HUP <mosquitto pid>.
#
# Files (defaults for the layout in secure.conf):
#   IOC_MQTT_DEVICES_PASSWD  /etc/mosquitto/ioc/devices.passwd
#   IOC_MQTT_DEVICES_ACL     /etc/mosquitto/ioc/devices.acl
#   IOC_MQTT_TOPIC_PREFIX    city
set -eu

usage() { echo "usage: $0 [--password-stdin] KIND ID" >&2; exit 2; }
from_stdin=no
if [ "${1:-}" = "--password-stdin" ]; then from_stdin=yes; shift; fi
[ $# -eq 2 ] || usage
kind=$1 id=$2
passwd=${IOC_MQTT_DEVICES_PASSWD:-/etc/mosquitto/ioc/devices.passwd}
acl=${IOC_MQTT_DEVICES_ACL:-/etc/mosquitto/ioc/devices.acl}
prefix=${IOC_MQTT_TOPIC_PREFIX:-city}

case $kind in traffic|camera|emergency|units) ;; *) echo "$0: KIND must be traffic, camera, emergency or units" >&2; exit 2;; esac
if ! printf '%s' "$id" | grep -Eq '^[A-Za-z0-9._-]{1,64}$' || [ "$(printf '%s' "$id" | wc -l)" -ne 0 ]; then
	echo "$0: ID must be 1-64 of A-Z a-z 0-9 . _ -" >&2; exit 2
fi
command -v mosquitto_passwd >/dev/null || { echo "$0: mosquitto_passwd not found (apt-get install mosquitto)" >&2; exit 1; }

if [ $from_stdin = yes ]; then
	IFS= read -r password || true
	[ ${#password} -ge 16 ] || { echo "$0: password must be at least 16 characters" >&2; exit 2; }
else
	password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
fi

umask 077
[ -e "$passwd" ] || : >"$passwd"
# The password goes through a pipe, never the command line (ps shows argv).
printf '%s\n%s\n' "$password" "$password" | mosquitto_passwd "$passwd" "$id" >/dev/null

if grep -qx "user $id" "$acl" 2>/dev/null; then
	echo "rotated the password of $id" >&2
else
	printf '\nuser %s\ntopic write %s/%s/%s\n' "$id" "$prefix" "$kind" "$id" >>"$acl"
	echo "added $id ($kind)" >&2
fi
[ $from_stdin = yes ] || printf '%s\n' "$password"
