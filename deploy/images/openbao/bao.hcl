# OpenBao for Oshal's token broker (deploy/images/openbao). Storage on
# the volume at /var/lib/openbao; auto-unsealed with a static 32-byte key
# from a secret, so it comes back unsealed after every restart; and, on
# the first start only, self-initialized: KV v2 at secret/ (what `oshal
# serve --vault-addr` reads and writes), the policy oshal-controller (its
# own paths and nothing else) and the controller's token, whose value is
# the secret openbao-controller-token (the controller reads the same value
# from --vault-token-file), and the operator's token (the secret
# openbao-admin-token, policy oshal-operator: everything), to rotate the
# controller's and to administer. The root token self-initialization uses
# is revoked afterwards. See README, "Containers and Kubernetes", for the
# secrets and how to rotate them.

ui           = false
api_addr     = "http://openbao:8200"
cluster_addr = "http://openbao:8201"

# Tokens live long: the controller does not renew its own (rotate it by
# writing a new secret and creating the token again, README).
default_lease_ttl = "768h"
max_lease_ttl     = "87600h"

# One node of integrated storage (OpenBao 2.7 has no file storage).
storage "raft" {
  path    = "/var/lib/openbao/data"
  node_id = "openbao-1"
}

listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = true
}

seal "static" {
  current_key_id = "oshal-1"
  current_key    = "file:///run/secrets/openbao-unseal-key"
}

initialize "kv" {
  request "mount-secret" {
    operation = "update"
    path      = "sys/mounts/secret"
    data = {
      type    = "kv"
      options = { version = "2" }
    }
  }
}

initialize "controller" {
  request "policy" {
    operation = "update"
    path      = "sys/policies/acl/oshal-controller"
    data = {
      policy = <<-POLICY
        # The controller's token broker: credentials under secret/oshal/.
        path "secret/data/oshal/*" {
          capabilities = ["create", "read", "update", "delete"]
        }
        path "secret/metadata/oshal/*" {
          capabilities = ["read", "list", "delete"]
        }
      POLICY
    }
  }
  request "token" {
    operation = "update"
    path      = "auth/token/create-orphan"
    data = {
      id = {
        eval_source = "file"
        eval_type   = "string"
        path        = "/run/secrets/openbao-controller-token"
      }
      policies          = ["oshal-controller"]
      no_default_policy = true
      ttl               = "87600h"
      display_name      = "oshal-controller"
    }
  }
}

initialize "operator" {
  request "policy" {
    operation = "update"
    path      = "sys/policies/acl/oshal-operator"
    data = {
      policy = <<-POLICY
        # The operator: everything, as root could (root is revoked).
        path "*" {
          capabilities = ["create", "read", "update", "delete", "list", "sudo"]
        }
      POLICY
    }
  }
  request "token" {
    operation = "update"
    path      = "auth/token/create-orphan"
    data = {
      id = {
        eval_source = "file"
        eval_type   = "string"
        path        = "/run/secrets/openbao-admin-token"
      }
      policies          = ["oshal-operator"]
      no_default_policy = true
      ttl               = "87600h"
      display_name      = "oshal-operator"
    }
  }
}
