// One storage account: the Functions host's own (AzureWebJobsStorage), the app's tables and queues, and the
// blob container Flex Consumption deploys the package from. Reached only with Entra ID (managed identity or
// the operator's sign-in): shared keys and SAS are off, so there is no connection string to leak.
param name string
param location string
param tags object
@description('Geo-redundant by default: the tables are the system of record for subscriptions and seats.')
param skuName string = 'Standard_GRS'
param deploymentContainerName string
@description('Table names; must match services/storage.py TABLES (a test checks).')
param tableNames array
@description('Queue names including their -poison queues; must match services/storage.py QUEUES (a test checks).')
param queueNames array

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration reaches storage over the public endpoint; access still needs an Entra token (shared keys are off).
  // checkov:skip=CKV_AZURE_59: same reason as CKV_AZURE_35: public network access is needed without VNet integration.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    dnsEndpointType: 'Standard'
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }

}

// Child resources are top-level declarations with `parent:` rather than nested blocks: pycep-parser (and
// so checkov and tests/infra) keeps only the last nested child of a resource.
resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

// Created here as well as by the app at startup (services/storage.py ensure_created), so the poison
// queues exist before the first failure and an operator can inspect them right after deployment.
resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queueName in queueNames: {
  parent: queueService
  name: queueName
}]

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for tableName in tableNames: {
  parent: tableService
  name: tableName
}]

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
