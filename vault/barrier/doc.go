// Package barrier encrypts secret material before it enters a raft
// command (AES-256-GCM under a data key, the storage key as additional
// data), and holds the keyring of data keys wrapped by a seal: a key file
// (FileSeal) or an AES key inside a PKCS#11 token (PKCS11Seal).
package barrier
