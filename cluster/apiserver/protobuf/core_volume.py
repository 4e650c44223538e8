"""Field tables for core/v1 volumes (``Volume`` and the volume sources pods commonly use).

Role: part of the PodSpec surface. Numbers from ``k8s.io/api/core/v1/generated.proto``. The legacy
in-tree cloud and network volume sources and generic ephemeral volumes are not tabled: their fields
are skipped like unknown ones (kubectl's generators never set them).
"""

from __future__ import annotations

from cluster.apiserver.protobuf.schema import (
    Kind,
    Schema,
    boolean,
    integer,
    map_of,
    message,
    quantity,
    string,
)

HOST_PATH_VOLUME_SOURCE: Schema = {
    1: string("path"),
    2: string("type", keep=True),
}

EMPTY_DIR_VOLUME_SOURCE: Schema = {
    1: string("medium"),
    2: quantity("sizeLimit", keep=True),
}

KEY_TO_PATH: Schema = {
    1: string("key"),
    2: string("path"),
    3: integer("mode", keep=True),
}

SECRET_VOLUME_SOURCE: Schema = {
    1: string("secretName"),
    2: message("items", KEY_TO_PATH, repeated=True),
    3: integer("defaultMode", keep=True),
    4: boolean("optional", keep=True),
}

NFS_VOLUME_SOURCE: Schema = {
    1: string("server"),
    2: string("path"),
    3: boolean("readOnly"),
}

PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE: Schema = {
    1: string("claimName"),
    2: boolean("readOnly"),
}

OBJECT_FIELD_SELECTOR: Schema = {
    1: string("apiVersion"),
    2: string("fieldPath"),
}

RESOURCE_FIELD_SELECTOR: Schema = {
    1: string("containerName"),
    2: string("resource"),
    3: quantity("divisor"),
}

DOWNWARD_API_VOLUME_FILE: Schema = {
    1: string("path"),
    2: message("fieldRef", OBJECT_FIELD_SELECTOR),
    3: message("resourceFieldRef", RESOURCE_FIELD_SELECTOR),
    4: integer("mode", keep=True),
}

DOWNWARD_API_VOLUME_SOURCE: Schema = {
    1: message("items", DOWNWARD_API_VOLUME_FILE, repeated=True),
    2: integer("defaultMode", keep=True),
}

LOCAL_OBJECT_REFERENCE: Schema = {
    1: string("name"),
}

CONFIG_MAP_VOLUME_SOURCE: Schema = {
    1: message("localObjectReference", LOCAL_OBJECT_REFERENCE, inline=True),
    2: message("items", KEY_TO_PATH, repeated=True),
    3: integer("defaultMode", keep=True),
    4: boolean("optional", keep=True),
}

SECRET_PROJECTION: Schema = {
    1: message("localObjectReference", LOCAL_OBJECT_REFERENCE, inline=True),
    2: message("items", KEY_TO_PATH, repeated=True),
    4: boolean("optional", keep=True),
}

DOWNWARD_API_PROJECTION: Schema = {
    1: message("items", DOWNWARD_API_VOLUME_FILE, repeated=True),
}

CONFIG_MAP_PROJECTION: Schema = {
    1: message("localObjectReference", LOCAL_OBJECT_REFERENCE, inline=True),
    2: message("items", KEY_TO_PATH, repeated=True),
    4: boolean("optional", keep=True),
}

SERVICE_ACCOUNT_TOKEN_PROJECTION: Schema = {
    1: string("audience"),
    2: integer("expirationSeconds", keep=True),
    3: string("path"),
}

VOLUME_PROJECTION: Schema = {
    1: message("secret", SECRET_PROJECTION),
    2: message("downwardAPI", DOWNWARD_API_PROJECTION),
    3: message("configMap", CONFIG_MAP_PROJECTION),
    4: message("serviceAccountToken", SERVICE_ACCOUNT_TOKEN_PROJECTION),
    # 5: clusterTrustBundle (ClusterTrustBundleProjection) not decoded
}

PROJECTED_VOLUME_SOURCE: Schema = {
    1: message("sources", VOLUME_PROJECTION, repeated=True),
    2: integer("defaultMode", keep=True),
}

CSI_VOLUME_SOURCE: Schema = {
    1: string("driver"),
    2: boolean("readOnly", keep=True),
    3: string("fsType", keep=True),
    4: map_of("volumeAttributes", Kind.STRING),
    5: message("nodePublishSecretRef", LOCAL_OBJECT_REFERENCE),
}

IMAGE_VOLUME_SOURCE: Schema = {
    1: string("reference"),
    2: string("pullPolicy"),
}

VOLUME_SOURCE: Schema = {
    1: message("hostPath", HOST_PATH_VOLUME_SOURCE),
    2: message("emptyDir", EMPTY_DIR_VOLUME_SOURCE),
    # 3: gcePersistentDisk (GCEPersistentDiskVolumeSource) not decoded
    # 4: awsElasticBlockStore (AWSElasticBlockStoreVolumeSource) not decoded
    # 5: gitRepo (GitRepoVolumeSource) not decoded
    6: message("secret", SECRET_VOLUME_SOURCE),
    7: message("nfs", NFS_VOLUME_SOURCE),
    # 8: iscsi (ISCSIVolumeSource) not decoded
    # 9: glusterfs (GlusterfsVolumeSource) not decoded
    10: message("persistentVolumeClaim", PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE),
    # 11: rbd (RBDVolumeSource) not decoded
    # 12: flexVolume (FlexVolumeSource) not decoded
    # 13: cinder (CinderVolumeSource) not decoded
    # 14: cephfs (CephFSVolumeSource) not decoded
    # 15: flocker (FlockerVolumeSource) not decoded
    16: message("downwardAPI", DOWNWARD_API_VOLUME_SOURCE),
    # 17: fc (FCVolumeSource) not decoded
    # 18: azureFile (AzureFileVolumeSource) not decoded
    19: message("configMap", CONFIG_MAP_VOLUME_SOURCE),
    # 20: vsphereVolume (VsphereVirtualDiskVolumeSource) not decoded
    # 21: quobyte (QuobyteVolumeSource) not decoded
    # 22: azureDisk (AzureDiskVolumeSource) not decoded
    # 23: photonPersistentDisk (PhotonPersistentDiskVolumeSource) not decoded
    26: message("projected", PROJECTED_VOLUME_SOURCE),
    # 24: portworxVolume (PortworxVolumeSource) not decoded
    # 25: scaleIO (ScaleIOVolumeSource) not decoded
    # 27: storageos (StorageOSVolumeSource) not decoded
    28: message("csi", CSI_VOLUME_SOURCE),
    # 29: ephemeral (EphemeralVolumeSource) not decoded
    30: message("image", IMAGE_VOLUME_SOURCE),
}

VOLUME: Schema = {
    1: string("name"),
    2: message("volumeSource", VOLUME_SOURCE, inline=True),
}
